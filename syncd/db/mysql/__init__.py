"""MySQL 8.0+ and MariaDB 10.6+ business databases (docs/mysql.md).

``url`` checks a ``[databases.<name>]`` DSN and needs nothing beyond syncd's own
dependencies; the rest (``engine``, ``migrations``, ``target``) needs the ``mysql``
extra (SQLAlchemy's asyncio layer over asyncmy) and is imported only when a
configuration names a business database.
"""
