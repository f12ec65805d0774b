"""The operator's console: a small web page, served on loopback, over the gateway's admin API."""
