//! Amazon ECS: the control-plane operations, one module per resource. `Ecs` implements the
//! generated `berth_wire::ecs::Api`; operations not listed here answer, through the trait's
//! default bodies, that Berth does not serve them yet.

pub mod account_settings;
pub mod attributes;
pub mod capacity;
pub mod capacity_providers;
pub mod cluster_index;
pub mod clusters;
pub mod common;
pub mod container_instances;
pub mod instance_usage;
pub mod placement;
pub mod service_controller;
pub mod services;
pub mod tags;
pub mod task_cache;
pub mod task_credentials;
pub mod task_definitions;
pub mod tasks;

use std::sync::Arc;

use berth_store::Store;
use berth_wire::ecs::{Api, shapes as s};
use berth_wire::{AwsError, RequestContext};

/// The kinds the control plane's store holds in memory (DESIGN §6): every placement writes
/// a task and its instance's usage, and every state an agent reports rewrites its task.
pub const KINDS_HELD_IN_MEMORY: &[&str] = &[
    tasks::task_kind::TASK,
    common::kind::CONTAINER_INSTANCE_USAGE,
    tasks::task_kind::HOST,
    common::kind::CONTAINER_INSTANCE,
];

/// The ECS service over the store.
pub struct Ecs {
    pub store: Arc<Store>,
    /// Wakes the agents whose tasks changed.
    pub notifier: Arc<crate::agent_channel::Notifier>,
    /// Each cluster's container instances as placement sees them, kept coherent with the
    /// store (see `cluster_index`).
    pub index: Arc<cluster_index::ClusterIndex>,
    /// Tasks RunTask created lately, decoded (see `task_cache`).
    pub task_cache: Arc<task_cache::TaskCache>,
}

impl Ecs {
    pub fn new(store: Arc<Store>) -> Ecs {
        let index = Arc::new(cluster_index::ClusterIndex::default());
        let observer = index.clone();
        if let Err(e) = store.observe(
            &[
                common::kind::CONTAINER_INSTANCE,
                common::kind::CONTAINER_INSTANCE_USAGE,
                tasks::task_kind::HOST,
            ],
            move |changes| observer.observe(changes),
        ) {
            // Only a poisoned lock fails here; the index then never trusts itself.
            tracing::error!(error = %e, "cannot observe the store for the cluster index");
            index.disable();
        }
        Ecs {
            store,
            notifier: Arc::default(),
            index,
            task_cache: Arc::default(),
        }
    }
}

type R<T> = Result<T, AwsError>;

impl Api for Ecs {
    // Clusters.
    fn create_cluster(
        &self,
        ctx: &RequestContext,
        input: s::CreateClusterRequest,
    ) -> R<s::CreateClusterResponse> {
        clusters::create(self, ctx, input)
    }
    fn describe_clusters(
        &self,
        ctx: &RequestContext,
        input: s::DescribeClustersRequest,
    ) -> R<s::DescribeClustersResponse> {
        clusters::describe(self, ctx, input)
    }
    fn list_clusters(
        &self,
        ctx: &RequestContext,
        input: s::ListClustersRequest,
    ) -> R<s::ListClustersResponse> {
        clusters::list(self, ctx, input)
    }
    fn update_cluster(
        &self,
        ctx: &RequestContext,
        input: s::UpdateClusterRequest,
    ) -> R<s::UpdateClusterResponse> {
        clusters::update(self, ctx, input)
    }
    fn update_cluster_settings(
        &self,
        ctx: &RequestContext,
        input: s::UpdateClusterSettingsRequest,
    ) -> R<s::UpdateClusterSettingsResponse> {
        clusters::update_settings(self, ctx, input)
    }
    fn delete_cluster(
        &self,
        ctx: &RequestContext,
        input: s::DeleteClusterRequest,
    ) -> R<s::DeleteClusterResponse> {
        clusters::delete(self, ctx, input)
    }
    fn put_cluster_capacity_providers(
        &self,
        ctx: &RequestContext,
        input: s::PutClusterCapacityProvidersRequest,
    ) -> R<s::PutClusterCapacityProvidersResponse> {
        clusters::put_capacity_providers(self, ctx, input)
    }

    // Task definitions.
    fn register_task_definition(
        &self,
        ctx: &RequestContext,
        input: s::RegisterTaskDefinitionRequest,
    ) -> R<s::RegisterTaskDefinitionResponse> {
        task_definitions::register(self, ctx, input)
    }
    fn describe_task_definition(
        &self,
        ctx: &RequestContext,
        input: s::DescribeTaskDefinitionRequest,
    ) -> R<s::DescribeTaskDefinitionResponse> {
        task_definitions::describe(self, ctx, input)
    }
    fn list_task_definitions(
        &self,
        ctx: &RequestContext,
        input: s::ListTaskDefinitionsRequest,
    ) -> R<s::ListTaskDefinitionsResponse> {
        task_definitions::list(self, ctx, input)
    }
    fn list_task_definition_families(
        &self,
        ctx: &RequestContext,
        input: s::ListTaskDefinitionFamiliesRequest,
    ) -> R<s::ListTaskDefinitionFamiliesResponse> {
        task_definitions::list_families(self, ctx, input)
    }
    fn deregister_task_definition(
        &self,
        ctx: &RequestContext,
        input: s::DeregisterTaskDefinitionRequest,
    ) -> R<s::DeregisterTaskDefinitionResponse> {
        task_definitions::deregister(self, ctx, input)
    }
    fn delete_task_definitions(
        &self,
        ctx: &RequestContext,
        input: s::DeleteTaskDefinitionsRequest,
    ) -> R<s::DeleteTaskDefinitionsResponse> {
        task_definitions::delete(self, ctx, input)
    }

    // Capacity providers.
    fn create_capacity_provider(
        &self,
        ctx: &RequestContext,
        input: s::CreateCapacityProviderRequest,
    ) -> R<s::CreateCapacityProviderResponse> {
        capacity_providers::create(self, ctx, input)
    }
    fn describe_capacity_providers(
        &self,
        ctx: &RequestContext,
        input: s::DescribeCapacityProvidersRequest,
    ) -> R<s::DescribeCapacityProvidersResponse> {
        capacity_providers::describe(self, ctx, input)
    }
    fn update_capacity_provider(
        &self,
        ctx: &RequestContext,
        input: s::UpdateCapacityProviderRequest,
    ) -> R<s::UpdateCapacityProviderResponse> {
        capacity_providers::update(self, ctx, input)
    }
    fn delete_capacity_provider(
        &self,
        ctx: &RequestContext,
        input: s::DeleteCapacityProviderRequest,
    ) -> R<s::DeleteCapacityProviderResponse> {
        capacity_providers::delete(self, ctx, input)
    }

    // Tags.
    fn tag_resource(
        &self,
        ctx: &RequestContext,
        input: s::TagResourceRequest,
    ) -> R<s::TagResourceResponse> {
        tags::tag(self, ctx, input)
    }
    fn untag_resource(
        &self,
        ctx: &RequestContext,
        input: s::UntagResourceRequest,
    ) -> R<s::UntagResourceResponse> {
        tags::untag(self, ctx, input)
    }
    fn list_tags_for_resource(
        &self,
        ctx: &RequestContext,
        input: s::ListTagsForResourceRequest,
    ) -> R<s::ListTagsForResourceResponse> {
        tags::list(self, ctx, input)
    }

    // Account settings.
    fn put_account_setting(
        &self,
        ctx: &RequestContext,
        input: s::PutAccountSettingRequest,
    ) -> R<s::PutAccountSettingResponse> {
        account_settings::put(self, ctx, input)
    }
    fn put_account_setting_default(
        &self,
        ctx: &RequestContext,
        input: s::PutAccountSettingDefaultRequest,
    ) -> R<s::PutAccountSettingDefaultResponse> {
        account_settings::put_default(self, ctx, input)
    }
    fn delete_account_setting(
        &self,
        ctx: &RequestContext,
        input: s::DeleteAccountSettingRequest,
    ) -> R<s::DeleteAccountSettingResponse> {
        account_settings::delete(self, ctx, input)
    }
    fn list_account_settings(
        &self,
        ctx: &RequestContext,
        input: s::ListAccountSettingsRequest,
    ) -> R<s::ListAccountSettingsResponse> {
        account_settings::list(self, ctx, input)
    }

    // Attributes.
    fn put_attributes(
        &self,
        ctx: &RequestContext,
        input: s::PutAttributesRequest,
    ) -> R<s::PutAttributesResponse> {
        attributes::put(self, ctx, input)
    }
    fn delete_attributes(
        &self,
        ctx: &RequestContext,
        input: s::DeleteAttributesRequest,
    ) -> R<s::DeleteAttributesResponse> {
        attributes::delete(self, ctx, input)
    }
    fn list_attributes(
        &self,
        ctx: &RequestContext,
        input: s::ListAttributesRequest,
    ) -> R<s::ListAttributesResponse> {
        attributes::list(self, ctx, input)
    }

    // Container instances (the records agents register; attributes target them).
    fn register_container_instance(
        &self,
        ctx: &RequestContext,
        input: s::RegisterContainerInstanceRequest,
    ) -> R<s::RegisterContainerInstanceResponse> {
        container_instances::register(self, ctx, input)
    }
    fn describe_container_instances(
        &self,
        ctx: &RequestContext,
        input: s::DescribeContainerInstancesRequest,
    ) -> R<s::DescribeContainerInstancesResponse> {
        container_instances::describe(self, ctx, input)
    }
    fn list_container_instances(
        &self,
        ctx: &RequestContext,
        input: s::ListContainerInstancesRequest,
    ) -> R<s::ListContainerInstancesResponse> {
        container_instances::list(self, ctx, input)
    }
    fn deregister_container_instance(
        &self,
        ctx: &RequestContext,
        input: s::DeregisterContainerInstanceRequest,
    ) -> R<s::DeregisterContainerInstanceResponse> {
        container_instances::deregister(self, ctx, input)
    }
    fn update_container_instances_state(
        &self,
        ctx: &RequestContext,
        input: s::UpdateContainerInstancesStateRequest,
    ) -> R<s::UpdateContainerInstancesStateResponse> {
        container_instances::update_state(self, ctx, input)
    }

    // Tasks.
    fn run_task(&self, ctx: &RequestContext, input: s::RunTaskRequest) -> R<s::RunTaskResponse> {
        tasks::run(self, ctx, input)
    }
    fn start_task(
        &self,
        ctx: &RequestContext,
        input: s::StartTaskRequest,
    ) -> R<s::StartTaskResponse> {
        tasks::start(self, ctx, input)
    }
    fn stop_task(&self, ctx: &RequestContext, input: s::StopTaskRequest) -> R<s::StopTaskResponse> {
        tasks::stop(self, ctx, input)
    }
    fn describe_tasks(
        &self,
        ctx: &RequestContext,
        input: s::DescribeTasksRequest,
    ) -> R<s::DescribeTasksResponse> {
        tasks::describe(self, ctx, input)
    }
    fn list_tasks(
        &self,
        ctx: &RequestContext,
        input: s::ListTasksRequest,
    ) -> R<s::ListTasksResponse> {
        tasks::list(self, ctx, input)
    }
    fn submit_task_state_change(
        &self,
        ctx: &RequestContext,
        input: s::SubmitTaskStateChangeRequest,
    ) -> R<s::SubmitTaskStateChangeResponse> {
        tasks::submit_task_state_change(self, ctx, input)
    }
    // Services.
    fn create_service(
        &self,
        ctx: &RequestContext,
        input: s::CreateServiceRequest,
    ) -> R<s::CreateServiceResponse> {
        services::create(self, ctx, input)
    }
    fn update_service(
        &self,
        ctx: &RequestContext,
        input: s::UpdateServiceRequest,
    ) -> R<s::UpdateServiceResponse> {
        services::update(self, ctx, input)
    }
    fn delete_service(
        &self,
        ctx: &RequestContext,
        input: s::DeleteServiceRequest,
    ) -> R<s::DeleteServiceResponse> {
        services::delete(self, ctx, input)
    }
    fn describe_services(
        &self,
        ctx: &RequestContext,
        input: s::DescribeServicesRequest,
    ) -> R<s::DescribeServicesResponse> {
        services::describe(self, ctx, input)
    }
    fn list_services(
        &self,
        ctx: &RequestContext,
        input: s::ListServicesRequest,
    ) -> R<s::ListServicesResponse> {
        services::list(self, ctx, input)
    }
    fn list_service_deployments(
        &self,
        ctx: &RequestContext,
        input: s::ListServiceDeploymentsRequest,
    ) -> R<s::ListServiceDeploymentsResponse> {
        services::list_deployments(self, ctx, input)
    }
    fn describe_service_deployments(
        &self,
        ctx: &RequestContext,
        input: s::DescribeServiceDeploymentsRequest,
    ) -> R<s::DescribeServiceDeploymentsResponse> {
        services::describe_deployments(self, ctx, input)
    }
    fn stop_service_deployment(
        &self,
        ctx: &RequestContext,
        input: s::StopServiceDeploymentRequest,
    ) -> R<s::StopServiceDeploymentResponse> {
        services::stop_deployment(self, ctx, input)
    }

    fn submit_container_state_change(
        &self,
        ctx: &RequestContext,
        input: s::SubmitContainerStateChangeRequest,
    ) -> R<s::SubmitContainerStateChangeResponse> {
        tasks::submit_container_state_change(self, ctx, input)
    }
}
