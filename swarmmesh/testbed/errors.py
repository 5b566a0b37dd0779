"""The error every engine raises when the machine cannot run it."""


class TestbedError(RuntimeError):
    """The machine cannot run the testbed; the message says how to fix it."""

    __test__ = False      # not a pytest test class, despite its name
