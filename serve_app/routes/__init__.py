"""One router per resource."""

API_PREFIX = "/api/v1"  # every resource route is under it (the web app and health checks are not)
