import sys

from onedrive_backup.emulator.cli import main

sys.exit(main())
