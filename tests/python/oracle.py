"""Helpers of the tests that compare jitctypes._ctypes with stock ctypes, the oracle."""


def simple(module, code: str) -> type:
    """A new simple type of `module` (stock `ctypes` or `jitctypes._ctypes`) for `code`."""
    return type(f"t_{code}", (module._SimpleCData,), {"_type_": code})


def outcome(action):
    """The value, or the exception class and message, of `action()`."""
    try:
        return ("ok", action())
    except Exception as error:  # comparing exceptions is the point
        return (type(error).__name__, str(error))


def both(action, stock, ours):
    """`outcome` of `action(module)` for stock ctypes and for jitctypes."""
    return [outcome(lambda module=module: action(module)) for module in (stock, ours)]
