"""Add-on preferences: where the server is, and how to start a local one from the panel.

`bl_idname` is the add-on's own package name (`bl_ext.<repo>.human3r` when installed as an
extension), derived from `__package__`, never hard-coded. `get_prefs()` falls back to the defaults
when the add-on was registered without Blender's add-on system (the `bpy` module in tests).
"""
import bpy
from bpy.props import FloatProperty, StringProperty

from ..core.local_server import ServerCommand

# this module is <addon>.blender.prefs; the preferences belong to <addon>
ADDON_ID = __package__.rpartition(".")[0]

DEFAULT_ADDRESS = "tcp://127.0.0.1:5555"


class HUMAN3R_AP_preferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    server_address: StringProperty(
        name="Server Address", default=DEFAULT_ADDRESS,
        description="ZeroMQ address of `human3r serve` (tcp://host:port)")
    timeout_s: FloatProperty(
        name="Connection Timeout", default=10.0, min=0.5, soft_max=120.0, unit="TIME_ABSOLUTE",
        description="Seconds of silence after which the server counts as gone")
    curve_server_key: StringProperty(
        name="Server Public Key", default="", subtype="PASSWORD",
        description="CurveZMQ public key (z85, 40 characters) of a server bound beyond loopback; empty = no encryption")
    curve_client_key_file: StringProperty(
        name="Client Key File", default="", subtype="FILE_PATH",
        description="This computer's CurveZMQ key pair (CLIENT.key_secret from `human3r keys`), whose public "
                    "key the server allows; empty = a one-off key the server must accept")
    backend_executable: StringProperty(
        name="Backend Executable", default="", subtype="FILE_PATH",
        description="The `human3r` program of the backend environment (empty = find `human3r` on PATH)")
    checkpoint_path: StringProperty(name="Checkpoint", default="", subtype="FILE_PATH",
                                    description="Human3R checkpoint (.pth or converted .safetensors)")
    smplx_path: StringProperty(name="SMPL-X Model", default="", subtype="FILE_PATH",
                               description="SMPL-X model file or folder (SMPLX_NEUTRAL.npz)")
    device: StringProperty(name="Device", default="",
                           description="Torch device for the local server (empty = the server's choice, e.g. cuda)")

    def draw(self, context):
        layout = self.layout
        col = layout.column()
        col.prop(self, "server_address")
        col.prop(self, "timeout_s")
        col.prop(self, "curve_server_key")
        sub = col.column()
        sub.active = bool(self.curve_server_key)
        sub.prop(self, "curve_client_key_file")
        box = layout.box()
        box.label(text="Local server (started from the Human3R panel)", icon="CONSOLE")
        box.prop(self, "backend_executable")
        box.prop(self, "checkpoint_path")
        box.prop(self, "smplx_path")
        box.prop(self, "device")


class _Defaults:
    """Preference values when the add-on is not registered through Blender's add-on system."""

    server_address = DEFAULT_ADDRESS
    timeout_s = 10.0
    curve_server_key = ""
    curve_client_key_file = ""
    backend_executable = ""
    checkpoint_path = ""
    smplx_path = ""
    device = ""


def get_prefs(context=None):
    """The add-on preferences (or an object with the default values)."""
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_ID)
    if addon is not None and addon.preferences is not None:
        return addon.preferences
    return _Defaults()


def server_command(prefs, media_roots: tuple[str, ...] = ()) -> ServerCommand:
    """The `human3r serve` command line the preferences describe (absolute paths)."""

    def path(p: str) -> str:
        return bpy.path.abspath(p) if p else ""

    return ServerCommand(executable=path(prefs.backend_executable), bind=prefs.server_address.strip(),
                         checkpoint=path(prefs.checkpoint_path), smplx=path(prefs.smplx_path),
                         device=prefs.device.strip(), media_roots=media_roots)


CLASSES = (HUMAN3R_AP_preferences,)
