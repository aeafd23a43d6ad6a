/** The status page (placeholder). @module */
export const STATUS_PAGE = "<!doctype html><title>image-transfer</title>";
