from cipherface.cli import main

main()
