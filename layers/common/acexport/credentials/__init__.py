"""The caller's AC connection: the credential store, the encryption of keys, save/delete/status."""
