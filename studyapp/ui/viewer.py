"""The DICOM viewer shared by the reading and comparison screens.

Two views of the same pipeline (``studyapp.dicom.display``):

* the browser viewer (``static/renderers.js`` + ``static/viewer.js`` in a ``gr.HTML``): the page receives the
  case's stack list, then fetches each frame's values once, as binary (``studyapp.dicom.browser.pack``), through
  the component's server function ``pixels`` (Gradio's signed-in ``component_server`` route, same origin), a few
  requests at a time, nearest the slice on screen first, and keeps them; the server decodes a series once, in
  parallel (``studyapp.dicom.series_cache``), and cuts reformats from its volume. The page does window/level,
  inversion, zoom, pan, slice scrolling, the ruler and the findings overlays on a canvas;
* the server-rendered view below it (8-bit image from the server, slice/zoom sliders, preset and window boxes),
  the fallback when the browser cannot draw and the reference the browser tests compare against.
"""

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import gradio as gr
from fastapi.responses import JSONResponse, Response

from studyapp.db.models import Case
from studyapp.dicom import browser, display, reformat, series_cache
from studyapp.services import findings, images
from studyapp.services.errors import PermissionDenied, StudyError
from studyapp.ui.context import UIContext, cookie_username, shows_errors, signed_in_user, user_action

#: Most slices one request of the browser viewer asks for (its loading requests after the slice on screen).
BATCH = 8
#: Longest side, in pixels, of the image sent to the browser.
VIEW_MAX_SIDE = 1024
FILE_DEFAULT = "As stored (the file's own VOI)"
CUSTOM = "Custom"
VIEWER_JS = "\n".join((Path(__file__).parent / "static" / name).read_text() for name in ("renderers.js", "viewer.js"))
VIEWER_CSS = (Path(__file__).parent / "static" / "viewer.css").read_text()
EMPTY_MANIFEST = json.dumps({"case": None, "stacks": []})
_warmer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="viewer-warm")  # one decode at a time, in order


def _stack_index(stacks: list[images.ImageStack], view: dict) -> int:
    """The series a case opens at: the one left (``view``), else the first."""
    return view.get("stack", 0) if view.get("stack", 0) < len(stacks) else 0


def _slice_number(stack: images.ImageStack, view: dict) -> int:
    """The 1-based slice a series opens at: the one left (``view``), else the middle one."""
    middle = len(stack.slices) // 2 + 1 if len(stack.slices) > 1 else 1
    return min(max(int(view.get("slice", middle)), 1), len(stack.slices))


def _first_slice(stack: images.ImageStack) -> tuple[str, int]:
    """The slice a stack opens at (the middle one), as the browser viewer and the server view pick it."""
    return stack.slices[len(stack.slices) // 2 if len(stack.slices) > 1 else 0]


def _warm(slices: list[tuple[str, int]]) -> None:
    """Decode and encode the frames a case opens with (JPEG 2000 decoding takes tens of milliseconds a slice), so
    the reader finds them kept; errors show when the case is opened."""
    for path, frame in slices:
        try:
            series_cache.frame_body(path, frame)
        except (display.UndecodableImageError, ValueError, IndexError):
            pass


def hung_stacks(stacks: list[images.ImageStack]) -> list[dict]:
    """The hanging protocol: the stacks the browser viewer shows side by side, every series of the case in order,
    then a coronal and a sagittal reformat (``studyapp.dicom.reformat``) of each CT series that can be reformatted.

    Returns:
        One dict per tile: ``label``, ``modality``, ``slices`` (count); reformats add ``plane`` and ``source``
        (the index of their series).
    """
    hung = [{"label": s.label, "modality": s.modality, "slices": len(s.slices)} for s in stacks]
    for index, stack in enumerate(stacks):
        if stack.modality != "CT":
            continue
        try:
            geo = reformat.geometry(tuple(stack.slices))
        except ValueError:
            continue  # shown axial only; reformat_notes says why
        hung += [{"label": f"{stack.label} · {plane}", "modality": stack.modality, "slices": geo.count(plane),
                  "plane": plane, "source": index} for plane in reformat.PLANES]
    return hung


def reformat_notes(stacks: list[images.ImageStack]) -> list[str]:
    """Why a CT series of the case has no coronal or sagittal reformat (missing slices, unequal gaps, ...), one
    sentence per such series."""
    notes = []
    for stack in stacks:
        if stack.modality != "CT" or len(stack.slices) < 2:
            continue
        try:
            reformat.geometry(tuple(stack.slices))
        except ValueError as error:
            notes.append(f"No coronal or sagittal view of {stack.label}: {error}.")
    return notes


def _refusal(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers={"Cache-Control": "no-store"})


def _study_date(value: str | None) -> str | None:
    """Study Date (0008,0020) YYYYMMDD as YYYY-MM-DD (as stored when malformed)."""
    return f"{value[:4]}-{value[4:6]}-{value[6:]}" if value and len(value) == 8 and value.isdigit() else value


class Viewer:
    """Viewer components, built inside the caller's Blocks layout, and their event wiring.

    ``case_id`` is a ``gr.State`` holding the id of the case on screen; ``open_outputs`` and :meth:`open`
    let a tab show a case as part of its own handler's return value. With ``with_findings=True`` (the reading screen)
    the browser viewer also gets the findings the reader's arm shows (``findings.shown_findings``); no other
    viewer ever sends findings.

    The last view of each case (series, slice, preset, window, zoom) is kept per user in this process, so a reader
    who returns to a case finds it as left (not kept across server restarts).
    """

    def __init__(self, ctx: UIContext, with_findings: bool = False):
        self.ctx = ctx
        self.with_findings = with_findings
        self._last_view: dict[tuple[int, int], dict] = {}  # (user id, case id) -> view
        self.case_id = gr.State(None)
        with gr.Column():
            self.client = gr.HTML(EMPTY_MANIFEST, html_template='<div class="sv-root" tabindex="0"></div>',
                                  css_template=VIEWER_CSS, js_on_load=VIEWER_JS, apply_default_css=False,
                                  server_functions=[self._pixels_function()], elem_classes="study-viewer")
            self.server_open = gr.State(False)  # the server view is rendered only while its accordion is open
            with gr.Accordion("Server-rendered view (fallback and reference)", open=False) as self.server_accordion:
                self._server_view()
        self.open_outputs = [self.case_id, self.stack, self.slice, self.preset, self.center, self.width, self.zoom,
                             self.image, self.message, self.client]
        self._wire()

    def _server_view(self):
        with gr.Column():
            self.image = gr.Image(label="Image", type="numpy", interactive=False, height=560, elem_id="viewer-image")
            self.message = gr.Markdown(elem_id="viewer-message")
            with gr.Row():
                self.stack = gr.Dropdown(label="Series", choices=[], type="index", scale=2)
                self.slice = gr.Slider(1, 2, value=1, step=1, label="Slice / frame", scale=2, visible=False)
                self.zoom = gr.Slider(1, 4, value=1, step=0.25, label="Zoom", scale=1)
            with gr.Row():
                self.preset = gr.Dropdown(label="Window preset", choices=[FILE_DEFAULT], value=FILE_DEFAULT, scale=2)
                self.center = gr.Number(label="Window center", value=None, scale=1, info="data range: no image")
                self.width = gr.Number(label="Window width", value=None, minimum=1, scale=1, info=" ")

    def _wire(self):
        view_inputs = [self.case_id, self.stack, self.slice, self.center, self.width, self.zoom, self.preset]
        private = {"api_visibility": "private"}
        self.server_accordion.expand(lambda: True, None, self.server_open, **private).then(
            self._render_shown, [self.server_open, self.case_id], [self.image, self.message], **private)
        self.server_accordion.collapse(lambda: False, None, self.server_open, **private)
        # a case shown (the browser viewer's stack list changed) is rendered on the server after the case screen
        self.client.change(self._render_shown, [self.server_open, self.case_id], [self.image, self.message],
                           trigger_mode="always_last", **private)
        self.stack.input(self._on_stack, [self.case_id, self.stack], self.open_outputs[2:-1], api_visibility="private")
        render = dict(fn=self._render, inputs=view_inputs, outputs=[self.image, self.message], api_visibility="private")
        for slider in (self.slice, self.zoom):
            slider.input(trigger_mode="always_last", **render)
        for number in (self.center, self.width):
            number.submit(**{**render, "fn": self._render_typed}).then(lambda: CUSTOM, None, self.preset,
                                                                       api_visibility="private")
        self.preset.input(
            self._on_preset, [self.case_id, self.stack, self.slice, self.preset, self.center, self.width, self.zoom],
            [self.center, self.width, self.image, self.message], api_visibility="private",
        )

    def _pixels_function(self):
        ctx = self.ctx

        def pixels(data: dict, request: gr.Request) -> Response:
            """Server function of the browser viewer, answered in binary through Gradio's signed-in
            ``component_server`` route: ``{"case", "stack", "slice"}`` (0-based indices into the hanging protocol's
            stacks) -> 200 with the frame's ``series_cache.frame_body`` (axial) or ``reformat.reformat_body`` (media
            type ``browser.MEDIA_TYPE``); ``"slices": [...]`` instead of ``"slice"`` asks for up to ``BATCH``
            slices at once -> 200 with ``browser.pack_batch`` of each slice's status and body (or JSON error), so a
            slice that cannot be shown does not hold back the others. A single slice is the one on screen
            (``series_cache.frame_body(on_screen=True)``); a batch's slices are decoded by the worker processes,
            first in their queue. The first axial slice asked for starts
            decoding the rest of its series in the worker processes (``series_cache.prefetch_once``, nearest
            first). Refusals are JSON ``{"error": message}``: 400 malformed, 401 not signed in, 403 no assignment
            for the case, 404 no such case or slice, 422 the image cannot be shown (undecodable, or a reformat
            refused, with the reason)."""
            try:
                case_id, stack = int(data["case"]), int(data["stack"])
                batch = "slices" in data
                indices = [int(i) for i in data["slices"]] if batch else [int(data["slice"])]
            except (KeyError, TypeError, ValueError) as error:
                return _refusal(400, f"malformed request: {error}")
            if not 1 <= len(indices) <= BATCH:
                return _refusal(400, f"malformed request: ask for 1 to {BATCH} slices at once")
            try:
                with ctx.sessions.begin() as session:
                    username = cookie_username(ctx, request)
                    if not username:
                        return _refusal(401, "please sign in")
                    user = signed_in_user(session, gr.Request(username=username))
                    stacks = images.case_stacks(session, user, case_id)
            except PermissionDenied as error:
                return _refusal(403, str(error))
            except StudyError as error:
                return _refusal(404, str(error))
            hung = hung_stacks(stacks)
            for index in indices:
                if not (0 <= stack < len(hung) and 0 <= index < hung[stack]["slices"]):
                    return _refusal(404, f"no slice {index + 1} in stack {stack + 1}")
            answers = []
            for index in indices:
                try:
                    if "plane" in hung[stack]:
                        body = reformat.reformat_body(stacks[hung[stack]["source"]].slices, hung[stack]["plane"],
                                                      index)
                    else:
                        slices = stacks[stack].slices
                        path, frame_index = slices[index]
                        body = series_cache.frame_body(path, frame_index, on_screen=not batch)
                        if len(slices) > 1:
                            series_cache.prefetch_once(slices, index, len(body))
                    answers.append((200, body))
                except (display.UndecodableImageError, ValueError, IndexError) as error:
                    if not batch:
                        return _refusal(422, f"Cannot display this image: {error}")
                    answers.append((422, json.dumps({"error": f"Cannot display this image: {error}"}).encode()))
            if batch:
                return Response(browser.pack_batch(answers), media_type=browser.BATCH_MEDIA_TYPE,
                                headers={"Cache-Control": "private, no-store"})
            return Response(answers[0][1], media_type=browser.MEDIA_TYPE,
                            headers={"Cache-Control": "private, no-store"})

        return pixels

    def open(self, session, user, case_id: int | None) -> dict:
        """Updates showing ``case_id`` as this user last left it, else its first series (an empty viewer for ``None``).

        Raises:
            PermissionDenied: the user has no assignment for the case.
        """
        if case_id is None:
            return {self.case_id: None, self.stack: gr.update(choices=[], value=None), self.image: None,
                    self.message: "", self.slice: gr.update(value=1, visible=False), self.preset: FILE_DEFAULT,
                    self.center: None, self.width: None, self.zoom: 1, self.client: EMPTY_MANIFEST}
        stacks = images.case_stacks(session, user, case_id)
        manifest = {"case": case_id, "stacks": hung_stacks(stacks), "notes": reformat_notes(stacks),
                    "study_date": _study_date(session.get(Case, case_id).study_date)}
        if self.with_findings:
            manifest["findings"] = findings.shown_findings(session, user, case_id)
            following = images.next_case_id(session, user, case_id)
            if following is not None:
                _warmer.submit(_warm, [_first_slice(s) for s in images.case_stacks(session, user, following)])
        view = self._last_view.get((user.id, case_id), {})
        index = _stack_index(stacks, view)
        updates = {self.case_id: case_id, self.zoom: view.get("zoom", 1), self.client: json.dumps(manifest),
                   self.stack: gr.update(choices=[(s.label, i) for i, s in enumerate(stacks)],
                                         value=index if stacks else None)}
        updates.update(self._stack_updates(stacks, index, view))
        return updates

    def _remember(self, user, case_id, **view) -> None:
        self._last_view[(user.id, case_id)] = view

    def _stack_updates(self, stacks: list[images.ImageStack], index: int, view: dict | None = None,
                       render: bool = False) -> dict:
        """Updates showing series ``index``: the middle slice at the file's VOI, or the remembered ``view``; the
        server image only with ``render`` (else :meth:`_render_shown` draws it when the server view is open)."""
        if not stacks:
            return {self.image: None, self.message: "This case has no images.", self.slice: gr.update(value=1, visible=False),
                    self.preset: FILE_DEFAULT, self.center: None, self.width: None}
        stack, view = stacks[index], view or {}
        slice_number = _slice_number(stack, view)
        window = view.get("window")
        named = self._presets(stack, slice_number)
        wide = named.get("wide")  # min..max of the slice's modality values
        shown = (lambda v: f"{round(v)}" if wide[1] >= 20 else f"{v:.3g}") if wide else None
        data_range = f"data range {shown(wide[0] - wide[1] / 2)} to {shown(wide[0] + wide[1] / 2)}" if wide \
            else "data range: -"
        updates = {self.slice: gr.update(minimum=1, maximum=max(2, len(stack.slices)), value=slice_number,
                                         visible=len(stack.slices) > 1),
                   self.preset: gr.update(choices=[FILE_DEFAULT, *named, CUSTOM], value=view.get("preset", FILE_DEFAULT)),
                   self.center: gr.update(value=window[0] if window else None, info=data_range),
                   self.width: gr.update(value=window[1] if window else None,
                                         info=f"up to {wide[1]:g} (the whole range)" if wide else " ")}
        if render:
            updates[self.image], updates[self.message] = self._image(stack, slice_number, window, view.get("zoom", 1.0))
        return updates

    @staticmethod
    def _image(stack: images.ImageStack, slice_number: int, window, zoom: float):
        path, frame = stack.slices[min(max(int(slice_number), 1), len(stack.slices)) - 1]
        zoom = float(zoom or 1)
        try:
            if zoom <= 1:  # rendered straight at viewer size from the cached reduced frame
                view = display.render_file(path, frame=frame, window=window, max_side=VIEW_MAX_SIDE)
            else:
                pixels = display.render_file(path, frame=frame, window=window)
                view = display.resize_for_display(display.zoom(pixels, zoom), VIEW_MAX_SIDE)
        except (display.UndecodableImageError, ValueError, IndexError) as error:
            return None, f"**Cannot display this image:** {error}"
        return view, f"Slice {slice_number} of {len(stack.slices)}" if len(stack.slices) > 1 else ""

    @staticmethod
    def _presets(stack: images.ImageStack, slice_number: int) -> dict:
        path, frame = stack.slices[min(max(int(slice_number), 1), len(stack.slices)) - 1]
        try:  # the body the browser gets names them: no decode when it is kept
            header, _ = browser.unpack(series_cache.frame_body(path, frame, on_screen=True))
            return {name: tuple(window) for name, window in header.get("presets", {}).items()}
        except ValueError:  # no table for the browser (very wide range): from the decoded frame
            try:
                presets = display.window_presets(display.load_frame(path, frame))
            except (display.UndecodableImageError, IndexError):
                return {}
        except (display.UndecodableImageError, IndexError):
            return {}
        presets.pop("default", None)  # the file's own VOI, which FILE_DEFAULT already renders
        return presets

    def _stacks(self, session, user, case_id):
        if case_id is None:
            raise gr.Error("open a case first")
        return images.case_stacks(session, user, case_id)

    @shows_errors
    def _on_stack(self, case_id, index, request: gr.Request):
        with user_action(self.ctx, request) as (session, user):
            stacks = self._stacks(session, user, case_id)
            self._remember(user, case_id, stack=int(index or 0))
            return self._stack_updates(stacks, int(index or 0), render=True)

    @shows_errors
    def _render(self, case_id, index, slice_number, center, width, zoom, preset, request: gr.Request):
        window = (float(center), float(width)) if center is not None and width else None
        with user_action(self.ctx, request) as (session, user):
            stacks = self._stacks(session, user, case_id)
            self._remember(user, case_id, stack=int(index or 0), slice=int(slice_number or 1), window=window,
                           zoom=float(zoom or 1), preset=(preset or FILE_DEFAULT) if window else FILE_DEFAULT)
        if not stacks:
            return None, "This case has no images."
        return self._image(stacks[int(index or 0)], slice_number, window, zoom)

    @shows_errors
    def _render_shown(self, shown, case_id, request: gr.Request):
        """The server image of the case as :meth:`open` set up its controls (the view left, else the middle slice
        of the first series), only while the server view is open: its PNG would only slow the case screen."""
        if not shown:
            return gr.skip()
        if case_id is None:
            return None, ""
        with user_action(self.ctx, request) as (session, user):
            stacks = self._stacks(session, user, case_id)
            view = self._last_view.get((user.id, case_id), {})
        if not stacks:
            return None, "This case has no images."
        stack = stacks[_stack_index(stacks, view)]
        return self._image(stack, _slice_number(stack, view), view.get("window"), view.get("zoom", 1.0))

    def _render_typed(self, case_id, index, slice_number, center, width, zoom, preset, request: gr.Request):
        """:meth:`_render` for a typed window center/width (remembered as the Custom preset)."""
        return self._render(case_id, index, slice_number, center, width, zoom, CUSTOM, request)

    @shows_errors
    def _on_preset(self, case_id, index, slice_number, preset, center, width, zoom, request: gr.Request):
        with user_action(self.ctx, request) as (session, user):
            stacks = self._stacks(session, user, case_id)
            if not stacks:
                return None, None, None, "This case has no images."
            stack = stacks[int(index or 0)]
            if preset == CUSTOM:
                window = (float(center), float(width)) if center is not None and width else None
            else:
                window = self._presets(stack, slice_number).get(preset)
            self._remember(user, case_id, stack=int(index or 0), slice=int(slice_number or 1), window=window,
                           zoom=float(zoom or 1), preset=preset if window else FILE_DEFAULT)
        image, message = self._image(stack, slice_number, window, zoom)
        return (window[0] if window else None), (window[1] if window else None), image, message
