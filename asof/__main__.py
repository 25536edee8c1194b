from asof.queryapi.cli import main

main()
