from jopt._cli import main

raise SystemExit(main())
