from avs.cli import main

main()
