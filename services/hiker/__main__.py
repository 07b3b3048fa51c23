from hiker.cli import main

raise SystemExit(main())
