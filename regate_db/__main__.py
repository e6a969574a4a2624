from regate_db.cli import main

main()
