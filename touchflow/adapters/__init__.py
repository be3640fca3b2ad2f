"""Adapters that implement the ports in :mod:`touchflow.ports`, one module per vendor.

Every connector takes its settings and an injectable transport in ``__init__``
(it never reads ``os.environ``) and turns vendor exceptions into errors from
:mod:`touchflow.errors`, raised ``from`` the original. Senders never raise for
one bad message of a batch: the error comes back in that message's
:class:`~touchflow.ports.SendResult`.

Modules are imported explicitly (``from touchflow.adapters.smtp.email_sender import
SmtpEmailSender``); this package imports nothing so that importing one
connector never pulls in another vendor's dependencies.
"""
