"""The `cise` command line and the wiring of CISE's parts; the only package that imports them all."""
