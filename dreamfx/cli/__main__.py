"""python -m dreamfx.cli"""

from dreamfx.cli import main

main()
