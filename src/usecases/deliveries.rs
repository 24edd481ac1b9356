//! The delivery log as staff and the operator's systems read it: a facility's Emails tab
//! (filtered and paged), one delivery with every attempt, the live statuses the tab polls, and
//! the API's list and detail. Writing a delivery is not here: every email is written in the
//! transaction of the change it tells of, then published by
//! [`Services::write_then_enqueue`](crate::services::Services::write_then_enqueue).

use crate::error::AppError;
use crate::services::Services;
use crate::store::{Attempt, Delivery, DeliveryFilter, DeliveryPage, DeliveryScope, Facility};

/// A page of a facility's Emails tab; `None` when the storefront has no such facility.
pub async fn facility_page(
    svc: &Services,
    storefront_id: i64,
    facility_id: i64,
    filter: &DeliveryFilter,
    before: Option<i64>,
    limit: i64,
) -> Result<Option<(Facility, DeliveryPage)>, AppError> {
    let Some(facility) = svc
        .store
        .storefront_facility(storefront_id, facility_id)
        .await?
    else {
        return Ok(None);
    };
    let page = svc
        .store
        .deliveries_page(DeliveryScope::Facility(facility.id), filter, before, limit)
        .await?;
    Ok(Some((facility, page)))
}

/// Where the API's delivery list is taken from: the whole storefront, or one of its
/// facilities by reference.
#[derive(Debug, Clone, Copy)]
pub enum ListScope<'a> {
    Storefront,
    FacilityRef(&'a str),
}

/// A page of the storefront's deliveries for the API; `None` when the facility reference
/// names no facility of the storefront.
pub async fn storefront_page(
    svc: &Services,
    storefront_id: i64,
    scope: ListScope<'_>,
    filter: &DeliveryFilter,
    before: Option<i64>,
    limit: i64,
) -> Result<Option<DeliveryPage>, AppError> {
    let scope = match scope {
        ListScope::Storefront => DeliveryScope::Storefront(storefront_id),
        ListScope::FacilityRef(r) => match svc.store.facility_id_by_ref(storefront_id, r).await? {
            Some(id) => DeliveryScope::Facility(id),
            None => return Ok(None),
        },
    };
    Ok(Some(
        svc.store
            .deliveries_page(scope, filter, before, limit)
            .await?,
    ))
}

/// One delivery of the storefront with its attempts, oldest first.
pub async fn detail(
    svc: &Services,
    storefront_id: i64,
    id: i64,
) -> Result<Option<(Delivery, Vec<Attempt>)>, AppError> {
    let Some(delivery) = svc.store.storefront_delivery(storefront_id, id).await? else {
        return Ok(None);
    };
    let attempts = svc.store.delivery_attempts(id).await?;
    Ok(Some((delivery, attempts)))
}

/// The current state of these deliveries of the storefront (at most 100; others are left out).
pub async fn statuses(
    svc: &Services,
    storefront_id: i64,
    ids: &[i64],
) -> Result<Vec<Delivery>, AppError> {
    Ok(svc.store.delivery_statuses(storefront_id, ids).await?)
}

/// How many deliveries wait for the relay (the queue-depth gauge).
pub async fn pending(svc: &Services) -> Result<i64, AppError> {
    Ok(svc.store.pending_deliveries().await?)
}
