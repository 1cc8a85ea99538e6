"""User-facing errors: one clear line naming the file and the problem, no traceback."""


class IonflowError(Exception):
    """An error caused by the user's input or environment (bad file, missing tool).

    The CLI prints ``ionflow <stage>: error: <message>`` and exits with status 2.
    Programming errors are NOT IonflowError and keep their traceback.
    """


class InputError(IonflowError):
    """A bad input file or field. Build it with the file and field named."""

    def __init__(self, path, problem: str, field: str | None = None):
        where = f"{path}" + (f" [{field}]" if field else "")
        super().__init__(f"{where}: {problem}")
        self.path = str(path)
        self.field = field
        self.problem = problem


class MissingToolError(IonflowError):
    """An external program (pw.x, lmp, sbatch, ...) is not installed."""


class NotBuiltError(IonflowError):
    """A stage that exists in the CLI but is not implemented yet."""
