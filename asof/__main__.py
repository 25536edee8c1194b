from asof.pgwire.cli import main

main()
