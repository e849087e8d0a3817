"""``gate explain``: the proxy's decision on one request, offline, with every check."""
