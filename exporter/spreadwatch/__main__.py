from spreadwatch.edges.cli import main

main()
