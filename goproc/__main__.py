from goproc.cli import main

main()
