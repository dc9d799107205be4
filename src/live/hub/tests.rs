//! The dispatcher's unit tests.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::live::delta;
use crate::live::feed::FeedMessage;

#[test]
fn encodes_an_event_with_a_data_line_per_line() {
    let wire = encode_event("feed", Some(42), "<ul>\n<li>a\r\nb\rc</li>\n</ul>");
    assert_eq!(&wire[..], b"event: feed\nid: 42\ndata: <ul>\ndata: <li>a\ndata: b\ndata: c</li>\ndata: </ul>\n\n");
    assert_eq!(&encode_event("signals", Some(7), "")[..], b"event: signals\nid: 7\ndata: \n\n");
    assert_eq!(&encode_event("signals", Some(7), "x\n")[..], b"event: signals\nid: 7\ndata: x\ndata: \n\n");
    assert_eq!(&encode_event("hello", None, "t")[..], b"event: hello\ndata: t\n\n");
}

#[test]
fn streams_sent_the_same_frames_share_the_compression_of_the_next() {
    let region = Region::Feed { hub_id: 3 };
    let row = |n: usize| {
        let words: String =
            (0..40).map(|i| format!("<span class=\"c-{}\">{}</span>", i * 7 % 13, i * i * 31)).collect();
        format!("<ul><li id=\"a-{n}\">{words}</li></ul>")
    };
    let frames: Vec<Arc<Frame>> = (1..=3).map(|n| Arc::new(Frame::new(&region, n as i64, &row(n)))).collect();
    let (mut a, mut b) = (Tail::default(), Tail::default());
    for frame in &frames[..2] {
        a.push(frame);
        b.push(frame);
    }
    let (after_a, after_b) = (frames[2].gzipped_after(&a), frames[2].gzipped_after(&b));
    assert_eq!(after_a.deflated.as_ptr(), after_b.deflated.as_ptr(), "compressed once for both");
    assert!(after_a.deflated.len() * 3 < frames[2].gzipped().deflated.len(), "it refers back to the frames before");

    // On a stream that was sent those frames, it decodes to the frame.
    let mut inflate = flate2::Decompress::new(false);
    let mut out = Vec::with_capacity(16 * 1024);
    for chunk in [
        frames[0].gzipped().clone(),
        frames[1].gzipped_after(&{
            let mut t = Tail::default();
            t.push(&frames[0]);
            t
        }),
        after_a,
    ] {
        inflate.decompress_vec(&chunk.deflated, &mut out, flate2::FlushDecompress::Sync).expect("inflate");
    }
    assert_eq!(out, [&frames[0].wire[..], &frames[1].wire[..], &frames[2].wire[..]].concat());

    // After one person's frame, shared by all their streams, the next is still compressed
    // once for those streams; after a control event (one stream's own), on its own.
    let personal = Arc::new(Frame::new(&Region::Feed { hub_id: 4 }, 4, "<p>mine</p>").personal(true));
    a.push(&personal);
    b.push(&personal);
    let (after_a, after_b) = (frames[2].gzipped_after(&a), frames[2].gzipped_after(&b));
    assert_eq!(after_a.deflated.as_ptr(), after_b.deflated.as_ptr());
    assert_ne!(after_a.deflated.as_ptr(), frames[2].gzipped().deflated.as_ptr());
    b.push(&Arc::new(Frame::control("session", "changed")));
    assert_eq!(frames[2].gzipped_after(&b).deflated.as_ptr(), frames[2].gzipped().deflated.as_ptr());
}

#[test]
fn a_round_reaches_each_client_as_one_bundle_of_its_shared_frames_then_its_own() {
    let hub = Arc::new(LiveHub::new(Duration::from_millis(10), Limits::default()));
    let (feed, signals) = (Region::Feed { hub_id: 1 }, Region::Signals { hub_id: 1 });
    let bell = |n: i64| Region::Bell { actor_id: n };
    let mut streams = Vec::new();
    for n in 1..=2 {
        let mut admitted = hub.admit(None, None).expect("admitted");
        let (frames, id, _) = hub.open(&mut admitted, &viewer(n));
        for (region, audience) in
            [(feed.clone(), Audience::Staff), (signals.clone(), Audience::Staff), (bell(n), person(n))]
        {
            let _ = hub.join(id, &region, &audience, Baseline::Nothing, || 0);
        }
        streams.push((admitted, frames));
    }
    let frame = |region: &Region, html: &str, personal: bool| Arc::new(Frame::new(region, 2, html).personal(personal));
    let (f, s, b) = (
        frame(&feed, "<p>feed</p>", false),
        frame(&signals, "<p>signals</p>", false),
        frame(&bell(1), "<p>1</p>", true),
    );
    hub.fan_out_all(vec![
        dispatch::Rendered { key: TopicKey::new(&bell(1), &person(1)), seq: 2, frame: Arc::clone(&b), split: None },
        dispatch::Rendered { key: TopicKey::new(&feed, &Audience::Staff), seq: 2, frame: Arc::clone(&f), split: None },
        dispatch::Rendered {
            key: TopicKey::new(&signals, &Audience::Staff),
            seq: 2,
            frame: Arc::clone(&s),
            split: None,
        },
    ]);
    let first = streams[0].1.try_recv().expect("the bundle");
    assert_eq!(&first.wire[..], &[&f.wire[..], &s.wire[..]].concat()[..], "the shared frames, in one");
    assert!(Arc::ptr_eq(&streams[0].1.try_recv().expect("the bell"), &b), "then its own");
    let second = streams[1].1.try_recv().expect("the bundle");
    assert!(Arc::ptr_eq(&first, &second), "one bundle for both");
    assert!(streams[1].1.try_recv().is_err(), "the other person's bell is not theirs");
}

#[test]
fn a_region_frame_names_its_region_and_hash() {
    let region = Region::Feed { hub_id: 3 };
    let (a, b) = (Frame::new(&region, 1, "<p>same</p>"), Frame::new(&region, 2, "<p>same</p>"));
    assert_eq!(a.hash, b.hash);
    assert_ne!(a.hash, Frame::new(&region, 1, "<p>other</p>").hash);
    let wire = String::from_utf8(a.wire.to_vec()).expect("utf-8");
    assert_eq!(wire, format!("event: feed\nid: 1\ndata: feed:3 {:016x}\ndata: <p>same</p>\n\n", a.hash));
}

fn viewer(actor: i64) -> Viewer {
    Viewer { actor_id: Some(actor), handle: None, display_name: String::new(), is_admin: false }
}

fn person(actor: i64) -> Audience {
    Audience::Person { actor: Some(actor), admin: false }
}

fn change(seq: i64, hub_id: i64) -> FeedMessage {
    FeedMessage::Change(Arc::new(super::super::ChangeEvent {
        seq,
        table: "annotations".into(),
        op: "insert".into(),
        hub_id: Some(hub_id),
        widget_id: None,
        row_id: None,
    }))
}

#[tokio::test]
async fn the_first_change_is_due_at_once_and_a_burst_waits_for_the_window() {
    let hub = Arc::new(LiveHub::new(Duration::from_secs(60), Limits::default()));
    let mut admitted = hub.admit(None, None).expect("admitted");
    let (_frames, id, _) = hub.open(&mut admitted, &viewer(1));
    let feed = Region::Feed { hub_id: 1 };
    assert!(matches!(hub.join(id, &feed, &person(1), Baseline::Nothing, || 0), Join::Render { .. }));
    assert_eq!(hub.next_due(), None, "nothing waits");
    assert!(hub.mark(Ok(change(1, 2))));
    assert_eq!(hub.next_due(), None, "another hub's change marks nothing");
    assert!(hub.mark(Ok(change(2, 1))));
    let due = hub.next_due().expect("due");
    assert!(due <= Instant::now(), "the first change renders at once");
    // As if it rendered now: the next change waits for the window, and folds with others.
    {
        let mut inner = lock(&hub.inner);
        for topic in inner.topics.values_mut() {
            topic.dirty = false;
            topic.rendered_at = Some(Instant::now());
        }
    }
    for seq in 3..10 {
        assert!(hub.mark(Ok(change(seq, 1))));
    }
    let due = hub.next_due().expect("due");
    assert!(due > Instant::now() + Duration::from_secs(50), "a burst waits for the window");
    assert_eq!(hub.stats.renders_coalesced.load(Ordering::Relaxed), 6, "seven changes, one render");
}

#[test]
fn a_client_that_has_the_current_html_gets_nothing_and_others_get_it_once() {
    let hub = Arc::new(LiveHub::new(Duration::from_millis(10), Limits::default()));
    let region = Region::Feed { hub_id: 1 };
    let mut a = hub.admit(None, None).expect("a");
    let (mut frames_a, id_a, _) = hub.open(&mut a, &viewer(1));
    let mut b = hub.admit(None, None).expect("b");
    let (mut frames_b, id_b, _) = hub.open(&mut b, &viewer(1));
    let Join::Render { generation } = hub.join(id_a, &region, &person(1), Baseline::Nothing, || 0) else {
        panic!("nobody had rendered it")
    };
    hub.joined_with(id_a, &region, generation, Frame::new(&region, 1, "<p>one</p>"), None);
    assert!(frames_a.try_recv().is_ok(), "a gets its render");
    let hash = html_hash("<p>one</p>");
    assert!(matches!(hub.join(id_b, &region, &person(1), Baseline::Hash(hash), || 0), Join::Authorize));
    let key = TopicKey::new(&region, &person(1));
    hub.fan_out(&key, 2, &Arc::new(Frame::new(&region, 2, "<p>one</p>")), None);
    assert!(frames_a.try_recv().is_err() && frames_b.try_recv().is_err(), "same HTML: nothing sent");
    hub.fan_out(&key, 3, &Arc::new(Frame::new(&region, 3, "<p>two</p>")), None);
    assert!(frames_a.try_recv().is_ok() && frames_b.try_recv().is_ok());
    // A render that a fan-out overtook is dropped: the client already has newer HTML.
    let mut c = hub.admit(None, None).expect("c");
    let (mut frames_c, id_c, _) = hub.open(&mut c, &viewer(2));
    let Join::Render { generation } = hub.join(id_c, &region, &person(2), Baseline::Nothing, || 0) else {
        panic!("render")
    };
    let key_c = TopicKey::new(&region, &person(2));
    hub.fan_out(&key_c, 5, &Arc::new(Frame::new(&region, 5, "<p>newer</p>")), None);
    hub.joined_with(id_c, &region, generation, Frame::new(&region, 4, "<p>older</p>"), None);
    let got = frames_c.try_recv().expect("the fan-out");
    assert_eq!(got.hash, html_hash("<p>newer</p>"));
    assert!(frames_c.try_recv().is_err(), "the overtaken render is not sent");
}

fn list(rows: &[&str]) -> String {
    let rows: String = rows.iter().map(|r| format!("<li id=\"r{r}\">{r}</li>\n")).collect();
    format!("<ol id=\"l\" data-live-list>\n{rows}</ol>")
}

#[test]
fn one_render_reaches_an_audience_and_those_with_the_last_get_only_the_rows() {
    let hub = Arc::new(LiveHub::new(Duration::from_millis(10), Limits::default()));
    let region = Region::Feed { hub_id: 1 };
    let first = list(&["a", "b"]);
    let (mut a, mut b, mut c) =
        (hub.admit(None, None).expect("a"), hub.admit(None, None).expect("b"), hub.admit(None, None).expect("c"));
    let (mut frames_a, id_a, _) = hub.open(&mut a, &viewer(1));
    let (mut frames_b, id_b, _) = hub.open(&mut b, &viewer(2));
    let (mut frames_c, id_c, _) = hub.open(&mut c, &viewer(3));
    let Join::Render { generation } = hub.join(id_a, &region, &Audience::Staff, Baseline::Nothing, || 0) else {
        panic!("render")
    };
    hub.joined_with(id_a, &region, generation, Frame::new(&region, 1, &first), delta::split(&first));
    assert!(frames_a.try_recv().is_ok());
    // Two more people of the same audience: one topic, nothing rendered for them.
    assert!(matches!(
        hub.join(id_b, &region, &Audience::Staff, Baseline::Hash(html_hash(&first)), || 0),
        Join::Authorize
    ));
    assert!(matches!(hub.join(id_c, &region, &Audience::Staff, Baseline::Nothing, || 0), Join::CatchUp));
    hub.catch_up(id_c, &region);
    assert!(frames_c.try_recv().is_ok(), "c gets the whole region");
    assert_eq!(hub.topics(), 1, "one topic for the three of them");
    let next = list(&["n", "a", "b"]);
    let key = TopicKey::new(&region, &Audience::Staff);
    hub.fan_out(&key, 2, &Arc::new(Frame::new(&region, 2, &next)), delta::split(&next));
    for frames in [&mut frames_a, &mut frames_b, &mut frames_c] {
        let frame = frames.try_recv().expect("the update");
        let wire = String::from_utf8(frame.wire.to_vec()).expect("utf-8");
        assert!(wire.contains("data-id=\"rn\""), "only the new row: {wire}");
        assert!(!wire.contains(">a<"), "not the unchanged rows: {wire}");
        assert_eq!(frame.hash, html_hash(&next));
    }
    assert_eq!(hub.stats.deltas_sent.load(Ordering::Relaxed), 3);
}
