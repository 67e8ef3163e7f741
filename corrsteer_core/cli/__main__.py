from corrsteer_core.cli import main

raise SystemExit(main())
