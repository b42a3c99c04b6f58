from goproc.cli.app import main

main()
