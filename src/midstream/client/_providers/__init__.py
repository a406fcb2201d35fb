"""One module per provider: each turns a :class:`~midstream.client.request.ChatRequest` into that
provider's request body. :mod:`midstream.client.providers` adds the URL, the headers and the credentials.
"""
