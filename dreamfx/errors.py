"""The one exception type users see: a single line saying what is wrong and what to do."""


class DreamfxError(ValueError):
    """A user-facing error whose message is one line naming the problem and the fix.

    Raised for bad files, bad parameters and bad audio; the CLI prints it
    without a traceback and exits with status 2.
    """


class PluginMissing(DreamfxError):
    """A hosted plugin (LV2 by URI, VST3 or Audio Unit by path) that is not installed here."""
