"""The distribution's name and version: the package, the CLI, the Hub client and the build read them here.

It imports nothing, so that any module can import it without importing the package's names.
"""

__all__ = ["LIBRARY_NAME", "__version__"]

__version__ = "0.1.0"

#: The distribution's name: ``pip install edsr-lib``, and the ``library_name`` the Hub sees.
LIBRARY_NAME = "edsr-lib"
