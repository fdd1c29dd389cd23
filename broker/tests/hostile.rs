//! The threat model of the brokers the product starts itself: one test per hostile situation.

use std::net::TcpListener;

use storefront_broker::EmbeddedBroker;

#[test]
fn the_embedded_broker_refuses_a_port_another_server_already_listens_on() {
    // Another broker (mosquitto on 1883, say) owns the port: it accepts connections, so a
    // check that only connects would take it for the embedded broker.
    let other = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = other.local_addr().unwrap().port();

    let error = match EmbeddedBroker::start(port) {
        Ok(_) => panic!("the embedded broker claimed port {port}, which another server owns"),
        Err(error) => error,
    };
    let message = error.to_string();
    assert!(message.contains(&port.to_string()), "{message}");
    assert!(message.contains("fix:"), "{message}");
}
