"""A loopback TCP proxy that can cut the connection to a server and restore it, to take the
database away from the app without stopping a PostgreSQL server other tests share."""

from __future__ import annotations

import asyncio
import contextlib
import struct


def _postgres_fatal(sqlstate: str, message: str) -> bytes:
    """A PostgreSQL wire-protocol ErrorResponse ('E'), as a server sends it to a new connection."""
    fields = b"SFATAL\0" + b"VFATAL\0" + f"C{sqlstate}\0M{message}\0".encode() + b"\0"
    return b"E" + struct.pack("!I", len(fields) + 4) + fields


SSL_REQUEST_CODE = struct.pack("!I", 80877103)
SHUTTING_DOWN = _postgres_fatal("57P03", "the database system is shutting down")


class CuttableProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self.port = 0
        self._refusal: bytes | None = None

    async def start(self) -> None:
        """Listen (on the same port as before, after a cut)."""
        self._server = await asyncio.start_server(self._connect, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self, *, shutting_down: bool = False) -> None:
        """Drop every open connection and refuse new ones, like a stopped server; or, with
        `shutting_down`, answer new ones as PostgreSQL does while it stops (SQLSTATE 57P03)."""
        assert self._server is not None
        for pipe in list(self._pipes):
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        if shutting_down:
            self._refusal = SHUTTING_DOWN
            return
        self._server.close()
        await self._server.wait_closed()
        self._server = None

    async def restore(self) -> None:
        """Pass connections through again."""
        self._refusal = None
        if self._server is None:
            await self.start()

    async def stop(self) -> None:
        if self._server is not None:
            await self.cut()

    async def _connect(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if self._refusal is not None:
            first = await client_reader.read(65536)
            if first[4:8] == SSL_REQUEST_CODE:  # "no SSL here", then the startup message follows
                client_writer.write(b"N")
                await client_writer.drain()
                await client_reader.read(65536)
            client_writer.write(self._refusal)
            await client_writer.drain()
            client_writer.close()
            return
        try:
            server_reader, server_writer = await asyncio.open_connection(*self._target)
        except OSError:
            client_writer.close()
            return
        pipe = asyncio.current_task()
        assert pipe is not None
        self._pipes.add(pipe)
        try:
            await asyncio.gather(_copy(client_reader, server_writer), _copy(server_reader, client_writer))
        finally:
            self._pipes.discard(pipe)
            for writer in (client_writer, server_writer):
                writer.close()


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()
