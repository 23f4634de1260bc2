"""The look of a twin's bodies under visual randomization: colour scale and texture.

Neither is part of a pybullet snapshot (``saveState`` holds physics only), so a restore leaves
the last episode's look on the bodies. Both are therefore always set from the nominal look,
never on top of the previous one, and :meth:`Looks.restore` brings the nominal look back when
an env switches randomization. One ``Looks`` serves one world for its whole life, across
randomizers, so it knows what every earlier randomizer changed.

Colours are set when drawn (one call per link). Textures are drawn when their term is, but
only put on the bodies by :meth:`Looks.show`, which the env calls right before it renders:
loading and swapping textures costs nothing in a training run that never renders.
"""

from __future__ import annotations

import numpy as np

from celltwin.textures import NO_TEXTURE, texture_file


class Looks:
    """Colour scales and textures on the bodies of one world.

    Args:
        world: the world whose bodies change colour and texture.
    """

    def __init__(self, world):
        self.world = world
        self._colours: dict[str, list] = {}    # body -> [(link, nominal rgba)]
        self._recoloured: set[str] = set()
        self.textures: dict[str, str] = {}     # target -> texture drawn, shown or not
        self._shown: dict[str, str] = {}       # target -> texture on the bodies now
        self._shapes: dict[str, tuple] = {}    # target -> (body, [(link, shape, nominal id)])
        self._texture_ids: dict[str, int] = {}  # texture -> pybullet id, loaded once per world
        self._revision = world.revision

    # ------------------------------------------------------------------------------ colour
    def recolour(self, body_name: str, scale: float) -> None:
        """Scale the nominal colour of every link of ``body_name`` by ``scale`` (now)."""
        client = self.world.client
        body = self.world.body(body_name)
        if body_name not in self._colours:
            self._colours[body_name] = [(shape[1], np.asarray(shape[7], float))
                                        for shape in client.getVisualShapeData(body)]
        self._recoloured.add(body_name)
        for link, rgba in self._colours[body_name]:
            client.changeVisualShape(body, link, rgbaColor=[*np.clip(rgba[:3] * scale, 0, 1), rgba[3]])

    # ------------------------------------------------------------------------------ texture
    def set_texture(self, target: str, texture: str) -> None:
        """Draw ``texture`` on ``target`` (a body, or ``body/link``) from the next :meth:`show`."""
        self.textures[target] = texture

    def show(self) -> None:
        """Put the drawn textures on the bodies; only those that changed cost a pybullet call."""
        if self.world.revision != self._revision:
            # A rebuilt part is a new body (never under its old id), built without a texture.
            self._revision = self.world.revision
            for target, (body, _) in list(self._shapes.items()):
                if body != self.world.body(target.partition("/")[0]):
                    del self._shapes[target]
                    self._shown.pop(target, None)
        for target, texture in self.textures.items():
            if self._shown.get(target, NO_TEXTURE) != texture:
                self._paint(target, texture)
                self._shown[target] = texture

    def _paint(self, target: str, texture: str) -> None:
        client = self.world.client
        if texture != NO_TEXTURE and texture not in self._texture_ids:
            self._texture_ids[texture] = client.loadTexture(str(texture_file(texture)))
        body, shapes = self._visual_shapes(target)
        for link, shape, nominal in shapes:
            # `none` puts back the texture id the body was built with (pybullet's -1 for no
            # texture, which TinyRenderer draws exactly as an untextured shape): the arm's
            # meshes and the floor come with textures of their own.
            texture_id = nominal if texture == NO_TEXTURE else self._texture_ids[texture]
            client.changeVisualShape(body, link, shapeIndex=shape, textureUniqueId=texture_id)

    def _visual_shapes(self, target: str) -> tuple[int, list[tuple[int, int, int]]]:
        """The body of ``target`` and its visual shapes: (link, shape index in the link,
        texture id it was built with) for every shape of the body or of its one link."""
        if target not in self._shapes:
            client = self.world.client
            body_name, _, link_name = target.partition("/")
            body = self.world.body(body_name)
            link = self.world.link_index(body_name, link_name) if link_name else None
            # pybullet reports the texture a shape was built with (changeVisualShape does not
            # update it), so this is the nominal id even after a texture was put on.
            rows = client.getVisualShapeData(body, flags=client.VISUAL_SHAPE_DATA_TEXTURE_UNIQUE_IDS)
            counts: dict[int, int] = {}
            shapes = []
            for row in rows:
                index = counts[row[1]] = counts.get(row[1], -1) + 1  # nth shape of its link
                if link is None or row[1] == link:
                    shapes.append((row[1], index, row[8]))
            self._shapes[target] = (body, shapes)
        return self._shapes[target]

    # ------------------------------------------------------------------------------ nominal
    def restore(self) -> None:
        """Bring back the nominal colours and textures of every body changed so far."""
        for body_name in sorted(self._recoloured):
            self.recolour(body_name, 1.0)
        self._recoloured.clear()
        self.textures = {target: NO_TEXTURE for target in self._shown}
        self.show()
        self.textures.clear()
