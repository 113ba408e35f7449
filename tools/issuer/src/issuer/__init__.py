"""OAuth2 client-credentials token issuer for the local stack (``python -m issuer``)."""
