"""edsr-lib's demo as a Hugging Face Space: the page that `edsr-lib demo` serves, from the installed package."""

from edsr_lib.demo import launch

launch()
