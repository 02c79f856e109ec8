// FaceX frontend extension: a region picker on the FaceX Task node, with task presets. The
// task node feeds both assemblers, so they always build the same task row. Plain DOM, no
// remote requests.
import { app } from "../../scripts/app.js";

const TASK_NODE = "FaceXTask";
// facex_core.ford.regions.REGION_NAMES, in order (a tier-1 test keeps the two equal).
const REGIONS = ["eyebrows", "eyes", "nose", "lips", "ears", "skin", "hair", "background",
                 "glasses", "hat", "earrings", "neck", "cloth"];
const INPUTS = ["target", "source", "reference"];
// What the picker offers per task, and a preset to start from.
const PICKERS = {
  attribute_editing: { kind: "regions", preset: { hair: "reference" } },
  mixture_editing: { kind: "inputs", preset: { eyes: "source", nose: "source", hair: "reference" } },
};

function parsePicks(text) {
  const picks = {};
  for (const item of (text || "").split(",")) {
    const [name, input] = item.split("=").map((part) => part.trim());
    if (name) picks[name] = input || "reference";
  }
  return picks;
}

function formatPicks(picks, kind) {
  const chosen = Object.entries(picks).filter(([, input]) => input !== "target");
  return chosen.map(([name, input]) => (kind === "regions" ? name : `${name}=${input}`)).join(",");
}

function widget(node, name) {
  return node.widgets?.find((w) => w.name === name);
}

function closeOnEscape(dialog) {
  const onKey = (event) => {
    if (event.key === "Escape") {
      dialog.remove();
      document.removeEventListener("keydown", onKey);
    }
  };
  document.addEventListener("keydown", onKey);
}

function openPicker(node) {
  const task = widget(node, "task")?.value;
  const picker = PICKERS[task];
  const picksWidget = widget(node, "picks");
  if (!picker || !picksWidget) {
    alert(`The ${task} task takes its regions from the FaceX task table; the picker is for attribute and mixture editing.`);
    return;
  }
  const current = parsePicks(picksWidget.value);
  const picks = Object.keys(current).length ? current : { ...picker.preset };
  const dialog = document.createElement("div");
  dialog.className = "facex-region-picker";
  Object.assign(dialog.style, {
    position: "fixed", top: "20%", left: "50%", transform: "translateX(-50%)", zIndex: 10000,
    background: "var(--comfy-menu-bg, #222)", color: "var(--fg-color, #ddd)", padding: "12px 16px",
    border: "1px solid var(--border-color, #555)", borderRadius: "8px", fontSize: "13px", minWidth: "260px",
  });
  const title = document.createElement("div");
  title.textContent = picker.kind === "regions" ? "Regions to take from the reference face" : "Where each region comes from";
  title.style.marginBottom = "8px";
  dialog.append(title);
  for (const region of REGIONS) {
    const row = document.createElement("label");
    Object.assign(row.style, { display: "flex", justifyContent: "space-between", gap: "12px", margin: "2px 0" });
    row.append(region);
    let control;
    if (picker.kind === "regions") {
      control = document.createElement("input");
      control.type = "checkbox";
      control.checked = (picks[region] ?? "target") !== "target";
      control.onchange = () => { picks[region] = control.checked ? "reference" : "target"; };
    } else {
      control = document.createElement("select");
      for (const input of INPUTS) control.append(new Option(input, input, false, (picks[region] ?? "target") === input));
      control.onchange = () => { picks[region] = control.value; };
    }
    row.append(control);
    dialog.append(row);
  }
  const buttons = document.createElement("div");
  Object.assign(buttons.style, { display: "flex", justifyContent: "flex-end", gap: "8px", marginTop: "10px" });
  const apply = document.createElement("button");
  apply.textContent = "Apply";
  apply.onclick = () => {
    picksWidget.value = formatPicks(picks, picker.kind);
    app.graph?.setDirtyCanvas(true, false);
    dialog.remove();
  };
  const cancel = document.createElement("button");
  cancel.textContent = "Cancel";
  cancel.onclick = () => dialog.remove();
  buttons.append(cancel, apply);
  dialog.append(buttons);
  document.body.append(dialog);
  closeOnEscape(dialog);
}

app.registerExtension({
  name: "FaceX.RegionPicker",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData.name !== TASK_NODE) return;
    const created = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      const result = created?.apply(this, arguments);
      // A button has no value: keep it out of both the saved workflow (widget.serialize)
      // and the prompt sent to the server (options.serialize).
      const button = this.addWidget("button", "pick regions…", null, () => openPicker(this), { serialize: false });
      button.serialize = false;
      const task = widget(this, "task");
      const changed = task?.callback;
      if (task) {
        task.callback = (...args) => {
          const value = changed?.apply(task, args);
          const picker = PICKERS[task.value];
          if (picker && !widget(this, "picks").value) widget(this, "picks").value = formatPicks(picker.preset, picker.kind);
          return value;
        };
      }
      return result;
    };
  },
});
