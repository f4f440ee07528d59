"""The kernel: what every app uses and nothing of ours is imported by it.

The error envelope (``errors``, ``views``, ``middleware``), strict fields and the parser, secret
responses, the OpenAPI error schema, the fast-path headers, request metadata (``request_meta``),
at-rest crypto, token hashing, one-time link tokens and ``public_url`` (``links``), email
normalisation and the ``AppSettings`` base. Modules here may import Django and third-party
libraries only.
"""
