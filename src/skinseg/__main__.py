from skinseg.cli import main

main()
