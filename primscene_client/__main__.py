from primscene_client.cli import main

main()
