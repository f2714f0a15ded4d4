"""The pull side of Engagement Atlas: harvesting other nodes and indexes into an index.

Modules: ``errors`` (the exception family), ``fetch`` (safe HTTP for untrusted sources),
``addresses`` (which IP addresses a fetch may connect to), ``parse`` (untrusted RDF),
``checks`` (authority and SHACL with quarantine), ``store`` (the index store interface).
This package never imports Flask or ``service``; it may import ``vocab``.
"""
