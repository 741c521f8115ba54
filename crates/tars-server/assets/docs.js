// The API reference: reads /openapi.json and lists its operations by tag, with their
// parameters, request body, responses and examples. Nothing is fetched from elsewhere.
"use strict";

const METHODS = ["get", "post", "put", "patch", "delete"];

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value; else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) {
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
  }
  return node;
}

/// `#/components/schemas/Name` → the schema, one level deep.
function resolve(doc, schema) {
  if (schema && schema.$ref) {
    const name = schema.$ref.split("/").pop();
    return [name, (doc.components.schemas || {})[name] || {}];
  }
  return [null, schema || {}];
}

function typeOf(doc, schema) {
  if (!schema) return "";
  if (schema.$ref) return schema.$ref.split("/").pop();
  if (schema.type === "array") return typeOf(doc, schema.items) + "[]";
  if (Array.isArray(schema.type)) return schema.type.join(" | ");
  if (schema.oneOf) return schema.oneOf.map((s) => typeOf(doc, s)).join(" | ");
  return schema.type || "any";
}

function schemaTable(doc, schema) {
  const [name, resolved] = resolve(doc, schema);
  const properties = resolved.properties || {};
  const required = new Set(resolved.required || []);
  const rows = Object.entries(properties).map(([field, spec]) =>
    el("tr", {}, el("td", {}, el("code", {}, field), required.has(field) ? " *" : ""),
      el("td", {}, typeOf(doc, spec)), el("td", { class: "muted" }, spec.description || "")));
  return el("div", {},
    name ? el("p", {}, "Schema ", el("code", {}, name)) : null,
    rows.length ? el("table", {}, el("tr", {}, el("th", {}, "field"), el("th", {}, "type"),
      el("th", {}, "description")), rows) : null);
}

function examplesOf(content) {
  const out = [];
  for (const media of Object.values(content || {})) {
    if (media.example !== undefined) out.push(media.example);
    for (const example of Object.values(media.examples || {})) {
      if (example.value !== undefined) out.push(example.value);
    }
  }
  return out.map((value) => el("pre", {}, JSON.stringify(value, null, 2)));
}

function operationView(doc, path, method, op) {
  const secured = (op.security || doc.security || []).length > 0;
  const parameters = (op.parameters || []).map((p) =>
    el("tr", {}, el("td", {}, el("code", {}, p.name), p.required ? " *" : ""), el("td", {}, p.in),
      el("td", {}, typeOf(doc, p.schema)), el("td", { class: "muted" }, p.description || "")));
  const body = op.requestBody && op.requestBody.content;
  const responses = Object.entries(op.responses || {}).map(([status, response]) => {
    const media = Object.values(response.content || {})[0];
    return el("tr", {}, el("td", {}, el("code", {}, status)), el("td", {}, response.description || ""),
      el("td", {}, media && media.schema ? typeOf(doc, media.schema) : ""));
  });
  return el("details", { "data-search": `${method} ${path} ${op.operationId} ${(op.tags || []).join(" ")}`.toLowerCase() },
    el("summary", {}, el("span", { class: `method ${method}` }, method.toUpperCase()),
      el("span", { class: "path" }, path), secured ? "🔒" : "",
      el("span", { class: "muted" }, op.operationId || "")),
    el("div", { class: "body" },
      op.description ? el("p", {}, op.description) : null,
      parameters.length ? [el("h4", {}, "Parameters"), el("table", {}, el("tr", {},
        el("th", {}, "name"), el("th", {}, "in"), el("th", {}, "type"), el("th", {}, "description")), parameters)] : null,
      body ? [el("h4", {}, "Request body"), schemaTable(doc, Object.values(body)[0].schema), examplesOf(body)] : null,
      el("h4", {}, "Responses"),
      el("table", {}, el("tr", {}, el("th", {}, "status"), el("th", {}, "meaning"), el("th", {}, "body")), responses)));
}

function render(doc) {
  const byTag = new Map();
  for (const [path, item] of Object.entries(doc.paths || {})) {
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      const tag = (op.tags || ["other"])[0];
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push(operationView(doc, path, method, op));
    }
  }
  const tags = [...byTag.keys()].sort();
  const main = document.getElementById("operations");
  main.replaceChildren(...tags.map((tag) =>
    el("section", { id: `tag-${tag.replace(/\W+/g, "-")}` }, el("h2", {}, tag), byTag.get(tag))));
  document.getElementById("tags").replaceChildren(...tags.map((tag) =>
    el("a", { href: `#tag-${tag.replace(/\W+/g, "-")}` }, tag)));
  document.title = `${doc.info.title} ${doc.info.version} — API reference`;
}

document.getElementById("filter").addEventListener("input", (event) => {
  const text = event.target.value.trim().toLowerCase();
  for (const op of document.querySelectorAll("details[data-search]")) {
    op.hidden = text !== "" && !op.dataset.search.includes(text);
  }
});

fetch("/openapi.json")
  .then((response) => {
    if (!response.ok) throw new Error(`/openapi.json answered ${response.status}`);
    return response.json();
  })
  .then(render)
  .catch((error) => {
    document.getElementById("operations").replaceChildren(el("p", {}, `Could not load the API document: ${error.message}`));
  });
