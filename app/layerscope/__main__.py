from layerscope.entry import main

raise SystemExit(main())
