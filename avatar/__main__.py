from avatar.cli import main

main()
