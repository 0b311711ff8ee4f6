from pgconverge.cli.main import main

raise SystemExit(main())
