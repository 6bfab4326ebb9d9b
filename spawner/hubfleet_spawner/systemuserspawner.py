"""SystemUserSpawner: each user's container runs as their host account, on their host home.

For hubs whose users have accounts on the Docker host (a lab server): the user's
home directory from the host is bound at ``image_homedir_format_string`` and the
container runs with the account's uid and gid, so files written in a notebook belong
to the user on the host. The hub reads the host's passwd database, so it runs on the
Docker host itself.
"""

import pwd
import re

from traitlets import Bool, Unicode

from .dockerspawner import DockerSpawner
from .errors import SpawnError
from .naming import host_path
from .volumes import check_not_docker_socket

# POSIX-portable account names as useradd accepts them by default.
HOST_USERNAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


class SystemUserSpawner(DockerSpawner):
    """Run each user's server as their host account, with their host home directory."""

    host_homedir_format_string = Unicode(
        "",
        help="""Template of the user's home directory on the host, e.g.
        "/srv/homes/{username}" ({username} is the account name). Empty (default):
        the home directory from the host's passwd database.""",
    ).tag(config=True)

    image_homedir_format_string = Unicode(
        "/home/{username}",
        help="Where the home directory is mounted in the container; {username} is the account name.",
    ).tag(config=True)

    run_as_root = Bool(
        False,
        help="""Start the container as root with NB_USER/NB_UID/NB_GID set, for images
        whose entrypoint switches to the user itself (jupyter/docker-stacks). Off: the
        container runs as the account's uid:gid from the start.""",
    ).tag(config=True)

    def host_account(self):
        """The user's host passwd entry; refuses names that are not host account names."""
        name = self.user.name
        if not HOST_USERNAME.match(name):
            raise SpawnError(
                "%r is not a valid account name on this host, so it cannot be mapped to a home "
                "directory. Ask an administrator to use host account names." % name,
                status_code=400,
            )
        try:
            return pwd.getpwnam(name)
        except KeyError:
            raise SpawnError(
                "There is no account %r on this host (SystemUserSpawner needs one per user). "
                "Ask an administrator to create it." % name
            )

    def host_home(self, account):
        if not self.host_homedir_format_string:
            home = account.pw_dir
        else:
            names = self.template_names()
            names.update(username=account.pw_name, raw_username=account.pw_name)
            home = host_path(self.host_homedir_format_string, names)
        check_not_docker_socket(home)
        return home

    def image_home(self, account):
        return self.image_homedir_format_string.format(username=account.pw_name)

    def account_environment(self, account):
        """The variables that tell the image whose server this is."""
        return dict(
            NB_USER=account.pw_name,
            NB_UID=str(account.pw_uid),
            NB_GID=str(account.pw_gid),
            USER=account.pw_name,
            HOME=self.image_home(account),
        )

    def account_user(self, account):
        """The container's user: the account's uid:gid (root only with run_as_root)."""
        if self.run_as_root:
            return "0"
        if account.pw_uid == 0 and not self.allow_root:
            raise SpawnError("Refusing to run a server as the host's root account.")
        return "%d:%d" % (account.pw_uid, account.pw_gid)

    async def container_user(self, image_info, extra_create):
        """Not the image's user, nor extra_create_kwargs': the host account's (resolve_settings)."""
        return None

    async def prepare_user_files(self, settings, created, prepared):
        """Nothing: the user's host home keeps its host ownership as it is."""

    async def resolve_settings(self, image, image_info):
        """DockerSpawner's settings as the host account, on its home; the account is looked up once."""
        account = self.host_account()
        user = self.account_user(account)
        settings = await super().resolve_settings(image, image_info)
        home = self.image_home(account)
        binds = dict(settings.binds)
        binds[self.host_home(account)] = {"bind": home, "mode": "rw"}
        extra_create = dict(settings.extra_create)
        extra_create.setdefault("working_dir", home)
        return settings.replace(
            user=user,
            binds=binds,
            environment=dict(settings.environment, **self.account_environment(account)),
            extra_create=extra_create,
        )
