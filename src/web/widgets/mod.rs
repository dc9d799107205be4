//! The widget page, one file per job: finding what its URLs name (`lookup.rs`, shared with the
//! reply and support actions of `web::replies`), the thread and its live renders
//! (`thread.rs`), the page with its composer (`page.rs`) and the author's edit, delete and undo
//! of their annotation (`edit.rs`).

mod edit;
pub mod lookup;
mod page;
mod thread;

use actix_web::web;

pub use lookup::{hub_widget, readable_widget, widget_by_ids, widget_path};
pub use thread::{
    THREAD_PAGE, ThreadItemView, ThreadPage, ThreadPanel, load_thread, load_thread_page, may_read_thread,
    render_live_charts, render_live_thread,
};

/// Mounts the widget page, its thread and the author's actions.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(page::show_widget)
        .service(thread::thread_region)
        .service(page::compose)
        .service(edit::show_annotation)
        .service(edit::edit_annotation)
        .service(edit::save_annotation)
        .service(edit::delete_annotation)
        .service(edit::restore_annotation);
}
