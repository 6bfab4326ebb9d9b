#!/usr/bin/python
# Copyright: Hubfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: swarm_placement
short_description: Swarm membership of a Docker host and where Hubfleet's services run
version_added: 0.1.0
description:
  - One call per host in a play makes the engine at O(docker_host) a swarm manager, a worker, or not a
    member. The first manager initialises the swarm; others join with tokens fetched from O(manager_host).
  - Sets node labels (for example V(hubfleet.role=user), V(hubfleet.pool=gpu)) and availability.
  - Without O(state), the call only sets labels and availability of O(node) through a manager engine.
  - Returns the swarm's node list and the placement constraint strings the SwarmSpawner should use.
author:
  - Hubfleet contributors (@hubfleet)
extends_documentation_fragment:
  - hubfleet.jupyterhub.docker
  - hubfleet.jupyterhub.attributes
requirements:
  - docker (Python SDK) >= 5.0
attributes:
  diff_mode:
    details: Shows the node's role, availability and labels before and after.
options:
  state:
    description:
      - V(manager) initialises a swarm (no O(manager_host)) or joins/promotes as a manager.
      - V(worker) joins the swarm of O(manager_host) as a worker, or demotes a manager.
      - V(absent) leaves the swarm. A manager leaves only with O(force=true).
      - Omitted, only the settings of O(node) change; O(docker_host) must then be a manager.
    type: str
    choices: [manager, worker, absent]
  manager_host:
    description:
      - Docker API URL of a manager of the swarm to join, for example V(tcp://10.0.0.1:2376). The module
        fetches join tokens there, and sets labels and availability of worker nodes through it.
      - The TLS options of this module apply to it as well.
    type: str
  join_addr:
    description: Swarm address to join, V(host:port). Defaults to the address O(manager_host) advertises, port V(2377).
    type: str
  join_token:
    description: Join token to use instead of fetching one from O(manager_host). Needs O(join_addr).
    type: str
  advertise_addr:
    description: Address this node advertises to the swarm (V(ip), V(ip:port) or an interface name).
    type: str
  listen_addr:
    description: Address the swarm management listener binds to.
    type: str
    default: 0.0.0.0:2377
  node:
    description:
      - Node ID or hostname whose labels and availability to set. Defaults to the node of O(docker_host).
    type: str
  labels:
    description: Node labels to set; other labels stay unless listed in O(remove_labels).
    type: dict
  remove_labels:
    description: Node label keys to remove.
    type: list
    elements: str
  availability:
    description: Scheduling availability of the node. V(drain) moves its tasks to other nodes.
    type: str
    choices: [active, pause, drain]
  force:
    description: Allow a manager to leave the swarm (O(state=absent)); the last manager leaving ends the swarm.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: First manager initialises the swarm and runs the hub
  hubfleet.jupyterhub.swarm_placement:
    state: manager
    advertise_addr: "{{ ansible_default_ipv4.address }}"
    labels:
      hubfleet.role: hub
  when: inventory_hostname == groups['managers'][0]

- name: Workers join and are labelled for user servers
  hubfleet.jupyterhub.swarm_placement:
    state: worker
    manager_host: "tcp://{{ hostvars[groups['managers'][0]].ansible_host }}:2376"
    tls: true
    labels:
      hubfleet.role: user
      hubfleet.pool: "{{ 'gpu' if has_gpu | default(false) else 'cpu' }}"
  register: placement
  when: inventory_hostname in groups['workers']

- name: Drain a node through the manager before maintenance
  hubfleet.jupyterhub.swarm_placement:
    node: worker-3
    availability: drain

- name: Leave the swarm
  hubfleet.jupyterhub.swarm_placement:
    state: absent
"""

RETURN = r"""
node_id:
  description: ID of the node that was set up or changed (null in check mode before an init or join).
  returned: always
  type: str
role:
  description: What the engine at O(docker_host) is afterwards, V(manager), V(worker) or V(inactive).
  returned: always
  type: str
action:
  description: The membership action, V(none), V(init), V(join), V(promote), V(demote) or V(leave).
  returned: always
  type: str
nodes:
  description: The swarm's nodes as a manager sees them (empty when no manager is reachable).
  returned: always
  type: list
  elements: dict
  sample:
    - id: 4kq0...
      hostname: worker-1
      role: worker
      availability: active
      state: ready
      addr: 10.0.0.11
      labels: {hubfleet.role: user}
      leader: false
actions:
  description: What the module did (or would do in check mode), one line per step; never key material or tokens.
  returned: always
  type: list
  elements: str
constraints:
  description: Placement constraints matching the node's labels from O(labels), for the SwarmSpawner.
  returned: always
  type: list
  elements: str
  sample: [node.labels.hubfleet.pool==gpu, node.labels.hubfleet.role==user]
"""

import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hubfleet.jupyterhub.plugins.module_utils.docker_common import (
    DOCKER_ERRORS,
    connect,
    docker_argument_spec,
    docker_error_message,
    make_diff,
)
from ansible_collections.hubfleet.jupyterhub.plugins.module_utils.swarm import (
    DEMOTE,
    INIT,
    JOIN,
    LEAVE,
    NONE,
    PROMOTE,
    SwarmPlanError,
    conflicting_labels,
    join_address,
    join_role_token,
    local_membership,
    membership_action,
    node_spec_changes,
    node_summary,
    placement_constraints,
    role_of,
)


class _ManagerConnection(object):
    """The module seen by ``connect()`` with docker_host replaced by manager_host."""

    def __init__(self, module):
        self.params = dict(module.params, docker_host=module.params["manager_host"])
        self.fail_json = module.fail_json


class SwarmPlacementManager(object):
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.check_mode = module.check_mode
        self.client = connect(module)
        self._manager_client = None
        self.changed = False
        self.actions = []
        self.diff_before = {}
        self.diff_after = {}

    def fail(self, msg):
        self.module.fail_json(msg=msg, changed=False)

    def manager_client(self):
        if self._manager_client is None:
            self._manager_client = connect(_ManagerConnection(self.module))
        return self._manager_client

    def validate_parameters(self):
        p = self.params
        both = conflicting_labels(p["labels"], p["remove_labels"])
        if both:
            self.fail("labels and remove_labels both name %s" % ", ".join(both))
        if p["join_token"] and not p["join_addr"]:
            self.fail("join_token needs join_addr (the manager's swarm address, host:2377)")
        if p["state"] == "absent" and (p["labels"] or p["remove_labels"] or p["availability"] or p["node"]):
            self.fail("state=absent leaves the swarm; labels, remove_labels, availability and node cannot be set with it")
        for key, value in (p["labels"] or {}).items():
            if not key or "=" in key or any(c.isspace() for c in key):
                self.fail("labels: %r is not a valid node label key" % key)
            if isinstance(value, (dict, list)):
                self.fail("labels: value of %r must be a string" % key)

    # ---- membership --------------------------------------------------
    def plan(self):
        state, is_manager, node_id, _cluster = local_membership(self.client.info())
        try:
            action = membership_action(
                state, is_manager, self.params["state"],
                has_manager_host=bool(self.params["manager_host"]),
                has_join_token=bool(self.params["join_token"]),
                force=self.params["force"],
            )
        except SwarmPlanError as exc:
            self.fail(str(exc))
        return action, role_of(state, is_manager), node_id

    def init(self):
        if not self.check_mode:
            self.client.init_swarm(advertise_addr=self.params["advertise_addr"], listen_addr=self.params["listen_addr"])

    def join(self):
        p = self.params
        role = p["state"]
        if p["join_token"]:
            token, address = p["join_token"], p["join_addr"]
        else:
            manager = self.manager_client()
            try:
                token = join_role_token(manager.inspect_swarm().get("JoinTokens"), role)
                address = join_address(manager.info(), p["join_addr"])
            except SwarmPlanError as exc:
                self.fail(str(exc))
        self.actions.append("join %s as %s" % (address, role))
        if not self.check_mode:
            self.client.join_swarm([address], token, listen_addr=p["listen_addr"], advertise_addr=p["advertise_addr"])

    def leave(self):
        if not self.check_mode:
            self.client.leave_swarm(force=self.params["force"])

    # ---- node settings -----------------------------------------------
    def settings_client(self, action, role_after):
        """A manager client that can update nodes: the local engine if it manages, else manager_host."""
        if role_after == "manager" or action == DEMOTE:
            return self.client
        if self.params["manager_host"]:
            return self.manager_client()
        return None

    def update_node(self, client, node_ref, role=None):
        """Apply labels/availability/role to one node; returns the node's summary before and after."""
        p = self.params
        node = client.inspect_node(node_ref)
        new_spec, changes = node_spec_changes(node.get("Spec"), p["labels"], p["remove_labels"], p["availability"], role)
        before = node_summary(node)
        after = dict(before, labels=new_spec.get("Labels") or {}, availability=new_spec.get("Availability"),
                     role=new_spec.get("Role"))
        if changes:
            self.changed = True
            self.actions.append("update node %s: %s" % (before["hostname"] or before["id"], ", ".join(sorted(changes))))
            if not self.check_mode:
                client.update_node(node["ID"], node["Version"]["Index"], new_spec)
        return before, after

    def run(self):
        self.validate_parameters()
        p = self.params
        action, role_before, node_id = self.plan()
        role_after = {INIT: "manager", JOIN: p["state"], PROMOTE: "manager", DEMOTE: "worker",
                      LEAVE: "inactive"}.get(action, role_before)
        self.diff_before["role"] = role_before
        self.diff_after["role"] = role_after
        if action != NONE:
            self.changed = True
            self.actions.append(action)
        if action == INIT:
            self.init()
        elif action == JOIN:
            self.join()
        elif action == LEAVE:
            self.leave()

        if not self.check_mode and action in (INIT, JOIN):
            node_id = local_membership(self.client.info())[2]
        wants_settings = p["labels"] or p["remove_labels"] or p["availability"] or action in (PROMOTE, DEMOTE)
        settings_client = self.settings_client(action, role_after)
        node_ref = p["node"] or node_id
        if wants_settings and action != LEAVE:
            if settings_client is None:
                self.fail("labels/availability of a worker are set through a manager: give manager_host")
            if node_ref is None:
                # Check mode before an init or join: the node does not exist yet; report the wanted settings.
                self.diff_after.update(labels=p["labels"] or {}, availability=p["availability"])
            else:
                role = {PROMOTE: "manager", DEMOTE: "worker"}.get(action)
                before, after = self.update_node(settings_client, node_ref, role)
                node_id = before["id"]
                self.diff_before.update(labels=before["labels"], availability=before["availability"])
                self.diff_after.update(labels=after["labels"], availability=after["availability"])

        nodes = []
        if settings_client is not None and role_after != "inactive" and not (self.check_mode and action in (INIT, JOIN)):
            nodes = [node_summary(node) for node in settings_client.nodes()]
        constraints = placement_constraints(dict((k, "" if v is None else str(v)) for k, v in (p["labels"] or {}).items()))
        result = dict(changed=self.changed, action=action, role=role_after, node_id=node_id, nodes=nodes,
                      constraints=constraints, actions=self.actions)
        if self.module._diff:
            result["diff"] = make_diff(self.diff_before, self.diff_after)
        self.module.exit_json(**result)


def main():
    argument_spec = docker_argument_spec()
    argument_spec.update(
        state=dict(type="str", choices=["manager", "worker", "absent"]),
        manager_host=dict(type="str"),
        join_addr=dict(type="str"),
        join_token=dict(type="str", no_log=True),
        advertise_addr=dict(type="str"),
        listen_addr=dict(type="str", default="0.0.0.0:2377"),
        node=dict(type="str"),
        labels=dict(type="dict"),
        remove_labels=dict(type="list", elements="str"),
        availability=dict(type="str", choices=["active", "pause", "drain"]),
        force=dict(type="bool", default=False),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    try:
        SwarmPlacementManager(module).run()
    except DOCKER_ERRORS as exc:
        module.fail_json(msg="Docker error: %s" % docker_error_message(exc), exception=traceback.format_exc())


if __name__ == "__main__":
    main()
