from evalkeeper.cli import main

main()
