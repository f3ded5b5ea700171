import sys

from onedrive_backup.cli import main

sys.exit(main())
