"""Make a NativeAuthenticator account exist, authorised, with the password on stdin.

Runs inside the hub container (the hub's Python, the database its configuration names):
    python ensure_native_user.py USERNAME < password
Prints one word: created, updated (password reset to the given one) or unchanged.
The password is read from stdin so it never shows in a process list or a log.
"""

import sys

import bcrypt
from nativeauthenticator.orm import UserInfo
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

CONFIG_FILE = "/etc/jupyterhub/jupyterhub_config.py"


def hub_db_url():
    """The database URL of the hub's configuration (SQLite on the data volume, or PostgreSQL)."""
    from jupyterhub.app import JupyterHub

    hub = JupyterHub()
    hub.load_config_file(CONFIG_FILE)
    return hub.db_url


def main():
    username = sys.argv[1]
    password = sys.stdin.read().strip().encode("utf-8")
    if len(password) < 8:
        sys.exit("the admin password must have at least 8 characters")
    engine = create_engine(hub_db_url())
    UserInfo.__table__.create(engine, checkfirst=True)
    session = sessionmaker(bind=engine)()
    user = session.query(UserInfo).filter(UserInfo.username == username).first()
    if user is None:
        hashed = bcrypt.hashpw(password, bcrypt.gensalt())
        session.add(UserInfo(username=username, password=hashed, is_authorized=True))
        outcome = "created"
    elif not bcrypt.checkpw(password, user.password) or not user.is_authorized:
        user.password = bcrypt.hashpw(password, bcrypt.gensalt())
        user.is_authorized = True
        outcome = "updated"
    else:
        outcome = "unchanged"
    session.commit()
    print(outcome)


if __name__ == "__main__":
    main()
