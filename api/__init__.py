"""The HTTP API and dashboard (issue 8): a read model of a CISE network over Starlette and
hypercorn's trio worker, bound to 127.0.0.1 only (docs/api.md). A shell on top of the services:
it reads assets, settlement and watchtower files and the chain; it must never be imported by them
or by `channels`, and never write anything but the one signed settlement request."""
