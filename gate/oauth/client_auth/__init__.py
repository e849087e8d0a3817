"""Client authentication methods of the token endpoint, one module per credential form."""
