from spreadwatch.edges.cli_fast import main

main()
