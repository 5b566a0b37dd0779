"""Test doubles for the layers above the data plane: a fake flow table that applies the
computed flows to packets (the role of FAUCET's clib/fakeoftable.py)."""
