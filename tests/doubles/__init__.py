"""Test doubles for the layers above the data plane, kept with the tests and out of the
wheel: a fake flow table that applies the computed flows to packets (the role of FAUCET's
clib/fakeoftable.py, which FAUCET also keeps outside its package)."""
