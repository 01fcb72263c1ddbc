from layerscope.cli.main import main

raise SystemExit(main())
