"""Browser pages, one module per page family (templates in templates/web/). Each view parses its
form, calls one flow or service, renders; helpers shared by several families live in web.pages and
web.services. Only URL confs import these modules (the import-linter "entry-points" contract)."""
